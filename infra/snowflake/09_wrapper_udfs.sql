-- 09 - friendly SQL wrappers over the model services, for analysts (the gateway does not use
-- them; it calls the REST endpoints). Idempotent: CREATE OR ALTER keeps grants.
-- Role: SYSADMIN (it inherits MODEL_DEPLOYER_ROLE, which owns the services). Grant USAGE on
-- them to analyst roles as you see fit, then check with such a role what else it needs to
-- reach the service through them: not settled here.
--
-- What is documented and what is not:
--   * Documented (Model Serving in SPCS): a model service is called from SQL as
--     <service_name>!<method_name>(<args in signature order>), e.g. MY_SERVICE!PREDICT(...).
--     The deployments (infra/models, spcs_models/spec.py) log method `predict`, so the service
--     function is PREDICT; check with SHOW FUNCTIONS IN MODEL <model> VERSION V1.
--   * Unconfirmed: that a SQL UDF body may call a service function (public examples do), and
--     that the service function returns an OBJECT keyed by the output column (outputs / labels)
--     as the REST endpoint does. Older token-classification versions return outputs as a JSON
--     string: the wrapper parses it when it is one.
--   * Unconfirmed: whether a service function takes the signature's params (BiomedCLIP's
--     hypothesis_template) as trailing arguments after the inputs. The image wrapper passes
--     BiomedCLIP's own template that way; drop the third argument if yours refuses it (the
--     model then uses the default of its signature, the same template).
--   * Unconfirmed: how a BINARY image argument reaches the model (docs/SNOWFLAKE_FACTS.md:
--     bytes encoding).

USE ROLE SYSADMIN;

CREATE OR ALTER FUNCTION PEDIATRIC_ML.MODELS.EXTRACT_BIOMEDICAL_ENTITIES(NOTE_TEXT STRING)
  RETURNS VARIANT
  LANGUAGE SQL
  COMMENT = 'BioBERT NER entities (word, entity, score, start, end) of a clinical note'
AS
$$
  SELECT IFF(IS_VARCHAR(R:outputs), PARSE_JSON(R:outputs::STRING), R:outputs)
  FROM (SELECT PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE!PREDICT(NOTE_TEXT) AS R)
$$;

CREATE OR ALTER FUNCTION PEDIATRIC_ML.MODELS.CLASSIFY_MEDICAL_IMAGE(IMAGE BINARY, CANDIDATE_LABELS ARRAY)
  RETURNS VARIANT
  LANGUAGE SQL
  COMMENT = 'BiomedCLIP zero-shot labels (label, score) of an image against candidate labels'
AS
$$
  SELECT R:labels
  FROM (SELECT PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE!PREDICT(
    IMAGE, CANDIDATE_LABELS, 'this is a photo of {}') AS R)
$$;
