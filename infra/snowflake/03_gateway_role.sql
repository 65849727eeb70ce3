-- 03 - the two custom roles: the gateway's (least privilege) and the model deployer's (owns the
-- models and their services), with the privileges that need only 01 and 02.
-- Idempotent (GRANT of a privilege already held is a no-op). Role: SECURITYADMIN, then
-- ACCOUNTADMIN for the one account-level grant.
--
-- Everything SPCS_GATEWAY_ROLE holds, and why (each grant sits in the script that creates its
-- object, because Snowflake grants only on objects that exist):
--   03  USAGE on PEDIATRIC_ML and its schemas MODELS, RESULTS, CLINICAL_DATA  - name resolution
--   03  USAGE on warehouse GATEWAY_WH                                          - run the MERGE
--   03  MONITOR, OPERATE on compute pool ML_INFERENCE_POOL                     - control plane:
--       observe the pool, resume it before a service and suspend it when all its services sleep
--   06  SELECT, INSERT on RESULTS.INFERENCE_RESULTS  - the idempotent MERGE (WHEN NOT MATCHED
--       THEN INSERT) reads and inserts; it never updates or deletes
--   07  USAGE on Cortex Search service CLINICAL_NOTES_SEARCH - on-demand semantic search (API);
--       (search needs no SELECT on CLINICAL_NOTES: the service reads it with its owner's rights)
--   08  SERVICE ROLE <svc>!ALL_ENDPOINTS_USAGE per model service - call the public endpoint
--   08  MONITOR, OPERATE on each model service - observe status, SUSPEND / RESUME
--   08  USAGE on each model - `spcs-gateway doctor` reads the deployed signature
--       (SHOW VERSIONS IN MODEL ... model_spec) and compares it with the registry's
--   11  (optional, the reference route) SELECT on CLINICAL_DATA.EHR_NOTES and
--       MEDICAL_IMAGES - the MERGE reads the referenced rows inside Snowflake
-- Nothing else: no ownership, no CREATE privileges, no account-level privileges.
--
-- MODEL_DEPLOYER_ROLE is the role the deployment tool runs as (between 07 and 08): it owns the
-- models and the services it creates, so only it (and SYSADMIN above it) can change them or
-- grant on them. Grant it to the ML engineers who deploy, not to the gateway:
--   GRANT ROLE MODEL_DEPLOYER_ROLE TO USER <ml_engineer>;

USE ROLE SECURITYADMIN;

CREATE ROLE IF NOT EXISTS SPCS_GATEWAY_ROLE
  COMMENT = 'spcs-gateway service user role: call model endpoints, suspend/resume them, write results';

-- Keep the custom roles under SYSADMIN, as Snowflake recommends for every custom role.
GRANT ROLE SPCS_GATEWAY_ROLE TO ROLE SYSADMIN;

GRANT USAGE ON DATABASE PEDIATRIC_ML TO ROLE SPCS_GATEWAY_ROLE;
GRANT USAGE ON SCHEMA PEDIATRIC_ML.MODELS TO ROLE SPCS_GATEWAY_ROLE;
GRANT USAGE ON SCHEMA PEDIATRIC_ML.RESULTS TO ROLE SPCS_GATEWAY_ROLE;
GRANT USAGE ON SCHEMA PEDIATRIC_ML.CLINICAL_DATA TO ROLE SPCS_GATEWAY_ROLE;
GRANT USAGE ON WAREHOUSE GATEWAY_WH TO ROLE SPCS_GATEWAY_ROLE;
GRANT MONITOR, OPERATE ON COMPUTE POOL ML_INFERENCE_POOL TO ROLE SPCS_GATEWAY_ROLE;

CREATE ROLE IF NOT EXISTS MODEL_DEPLOYER_ROLE
  COMMENT = 'Deploys the spcs-gateway models: owns the models and their SPCS services';

GRANT ROLE MODEL_DEPLOYER_ROLE TO ROLE SYSADMIN;

-- log_model and create_service: name resolution, the warehouse their queries run on, the
-- schema objects they create (the model, the service and the image repository the model
-- registry builds the service image into), the pool the service runs on.
GRANT USAGE ON DATABASE PEDIATRIC_ML TO ROLE MODEL_DEPLOYER_ROLE;
GRANT USAGE ON SCHEMA PEDIATRIC_ML.MODELS TO ROLE MODEL_DEPLOYER_ROLE;
GRANT USAGE ON WAREHOUSE GATEWAY_WH TO ROLE MODEL_DEPLOYER_ROLE;
GRANT CREATE MODEL, CREATE SERVICE, CREATE IMAGE REPOSITORY ON SCHEMA PEDIATRIC_ML.MODELS
  TO ROLE MODEL_DEPLOYER_ROLE;
GRANT USAGE, MONITOR ON COMPUTE POOL ML_INFERENCE_POOL TO ROLE MODEL_DEPLOYER_ROLE;

USE ROLE ACCOUNTADMIN;

-- A service with a public endpoint (the ingress the gateway calls) can only be created by a
-- role holding BIND SERVICE ENDPOINT on the account: the services' owner, not the gateway.
GRANT BIND SERVICE ENDPOINT ON ACCOUNT TO ROLE MODEL_DEPLOYER_ROLE;
