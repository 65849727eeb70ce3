-- 09 - friendly SQL wrappers over the model services, for analysts (the gateway does not use
-- them; it calls the REST endpoints). Idempotent: CREATE OR ALTER keeps grants.
-- Role: SYSADMIN. Grant USAGE on them to analyst roles as you see fit, then check with such a
-- role what else it needs to reach the service through them: not settled here.
--
-- What is documented and what is not:
--   * Documented (Model Serving in SPCS): a model service is called from SQL as
--     <service_name>!<method_name>(<args in signature order>), e.g. MY_SERVICE!PREDICT(...).
--   * Seen in snowflake-ml-python's own tests, not in the reference pages: a HuggingFace pipeline's
--     __call__ method is called as <service>!"__CALL__"(...) (quoted: the name starts with _).
--     Check yours with SHOW FUNCTIONS IN SERVICE <service> and adjust the name if it differs.
--   * The seed guide's form BIOBERT_NER!PREDICT(OBJECT_CONSTRUCT('inputs', text)) names the
--     model, not the service, and passes one object instead of the signature's columns; it is
--     not the documented syntax and is not used here.
--   * Unconfirmed: that a SQL UDF body may call a service function (public examples do), and
--     that the service function returns an OBJECT keyed by the output column (outputs / labels)
--     as the REST endpoint does. Older token-classification versions return outputs as a JSON
--     string: the wrapper parses it when it is one.
--   * Unconfirmed: how a BINARY image argument reaches the model (SNOWFLAKE.md: bytes encoding).

USE ROLE SYSADMIN;

CREATE OR ALTER FUNCTION PEDIATRIC_ML.MODELS.EXTRACT_BIOMEDICAL_ENTITIES(NOTE_TEXT STRING)
  RETURNS VARIANT
  LANGUAGE SQL
  COMMENT = 'BioBERT NER entities (word, entity, score, start, end) of a clinical note'
AS
$$
  SELECT IFF(IS_VARCHAR(R:outputs), PARSE_JSON(R:outputs::STRING), R:outputs)
  FROM (SELECT PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE!"__CALL__"(NOTE_TEXT) AS R)
$$;

CREATE OR ALTER FUNCTION PEDIATRIC_ML.MODELS.CLASSIFY_MEDICAL_IMAGE(IMAGE BINARY, CANDIDATE_LABELS ARRAY)
  RETURNS VARIANT
  LANGUAGE SQL
  COMMENT = 'BiomedCLIP zero-shot labels (label, score) of an image against candidate labels'
AS
$$
  SELECT R:labels
  FROM (SELECT PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE!"__CALL__"(IMAGE, CANDIDATE_LABELS) AS R)
$$;
