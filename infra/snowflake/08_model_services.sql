-- 08 - after the model deployment: pin the services' settings and give the gateway its grants.
-- Idempotent (ALTER SERVICE ... SET, GRANT). Role: MODEL_DEPLOYER_ROLE, the owner of the models
-- and services (only a service's owner can grant its service role).
--
-- Run it after the deployment tool (infra/models/README.md):
--   spcs-models deploy --connection <name> --role MODEL_DEPLOYER_ROLE
-- As MODEL_DEPLOYER_ROLE, the tool logs each model of spcs_models/spec.py (name, version,
-- method `predict`, signature) in the Model Registry and creates its service with
-- snowflake-ml-python, every setting explicit, in effect:
--
--   reg = Registry(snowpark, database_name="PEDIATRIC_ML", schema_name="MODELS")
--   reg.get_model("BIOBERT_NER").version("V1").create_service(
--       service_name="PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE",
--       service_compute_pool="ML_INFERENCE_POOL",
--       ingress_enabled=True,          # the public endpoint the gateway calls
--       min_instances=1,               # not the library's default 0 (see below)
--       max_instances=1,
--       max_batch_rows=32,             # keep equal to the registry's max_batch_rows
--   )
--   (the same for BIOMEDCLIP_CLASSIFIER / PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE)
--
-- Every statement below fails while a service or model is missing: run the tool first.
-- Then read each endpoint for the registry (template parameters NerServiceUrl / ClipServiceUrl):
--   SHOW ENDPOINTS IN SERVICE PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE;   -- column ingress_url

USE ROLE MODEL_DEPLOYER_ROLE;

-- The gateway's control plane decides when a service sleeps: it knows the SQS backlog, which
-- Snowflake's own timers do not. MIN_INSTANCES = 1: with snowflake-ml-python's default 0,
-- Snowflake suspends an idle service by itself. AUTO_SUSPEND_SECS = 0 turns the time-based
-- suspension off. AUTO_RESUME stays on so an analyst's SQL call (09) still wakes a sleeping
-- service.
ALTER SERVICE PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE SET
  MIN_INSTANCES = 1
  AUTO_SUSPEND_SECS = 0
  AUTO_RESUME = TRUE;
ALTER SERVICE PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE SET
  MIN_INSTANCES = 1
  AUTO_SUSPEND_SECS = 0
  AUTO_RESUME = TRUE;

-- Call the public endpoints (ingress checks this service role on every request).
GRANT SERVICE ROLE PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE!ALL_ENDPOINTS_USAGE
  TO ROLE SPCS_GATEWAY_ROLE;
GRANT SERVICE ROLE PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE!ALL_ENDPOINTS_USAGE
  TO ROLE SPCS_GATEWAY_ROLE;

-- MONITOR: SHOW SERVICES / SHOW SERVICE CONTAINERS (readiness). OPERATE: SUSPEND / RESUME.
GRANT MONITOR, OPERATE ON SERVICE PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE TO ROLE SPCS_GATEWAY_ROLE;
GRANT MONITOR, OPERATE ON SERVICE PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE TO ROLE SPCS_GATEWAY_ROLE;

-- USAGE on the models: `spcs-gateway doctor` compares each deployed signature
-- (SHOW VERSIONS IN MODEL ... with SHOW_MODEL_DETAILS_IN_SHOW_VERSIONS_IN_MODEL) with the
-- registry's. The least privilege that shows a version's model_spec; it also lets the role run
-- the model's warehouse functions, which the gateway never calls. Drop these two grants if you
-- run doctor as an operator role instead.
GRANT USAGE ON MODEL PEDIATRIC_ML.MODELS.BIOBERT_NER TO ROLE SPCS_GATEWAY_ROLE;
GRANT USAGE ON MODEL PEDIATRIC_ML.MODELS.BIOMEDCLIP_CLASSIFIER TO ROLE SPCS_GATEWAY_ROLE;
