-- 08 - the model services, and the gateway's grants on them.
-- Idempotent (ALTER SERVICE IF EXISTS ... SET, GRANT). Role: SYSADMIN (service owner).
--
-- The services themselves are created by the Model Registry, not by SQL in this repository:
-- either Snowsight (AI & ML > Models > Import model, "Create REST API endpoint" checked), as the
-- seed guide does, or snowflake-ml-python:
--
--   from snowflake.ml.registry import Registry
--   reg = Registry(session, database_name="PEDIATRIC_ML", schema_name="MODELS")
--   reg.get_model("BIOBERT_NER").version("V1").create_service(
--       service_name="PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE",
--       service_compute_pool="ML_INFERENCE_POOL",
--       ingress_enabled=True,          # the public endpoint the gateway calls
--       max_instances=1,
--       max_batch_rows=32,             # keep equal to the registry's max_batch_rows
--   )
--   reg.get_model("BIOMEDCLIP_CLASSIFIER").version("V1").create_service(
--       service_name="PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE", service_compute_pool="ML_INFERENCE_POOL",
--       ingress_enabled=True, max_instances=1)
--
-- Then read each endpoint for the registry (template parameters NerServiceUrl / ClipServiceUrl):
--   SHOW ENDPOINTS IN SERVICE PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE;   -- column ingress_url
-- and the method name (NerServiceMethod / ClipServiceMethod; HuggingFace pipelines: __call__):
--   SHOW FUNCTIONS IN MODEL PEDIATRIC_ML.MODELS.BIOBERT_NER VERSION V1;
--
-- Run this script once the services exist (its statements on a missing service do nothing or
-- fail on the GRANT, so re-run it after creating them).

USE ROLE SYSADMIN;

-- The gateway's control plane decides when a service sleeps: it knows the SQS backlog, which
-- Snowflake's time-based AUTO_SUSPEND_SECS does not. 0 turns Snowflake's own timer off.
-- AUTO_RESUME stays on so an analyst's SQL call (09) still wakes a sleeping service.
ALTER SERVICE IF EXISTS PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE SET
  AUTO_SUSPEND_SECS = 0
  AUTO_RESUME = TRUE;
ALTER SERVICE IF EXISTS PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE SET
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
