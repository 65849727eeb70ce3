-- 03 - the gateway's role, with the privileges that need only 01 and 02.
-- Idempotent (GRANT of a privilege already held is a no-op). Role: SECURITYADMIN.
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
--       no SELECT on CLINICAL_NOTES: the search service answers with its owner's rights
--   08  SERVICE ROLE <svc>!ALL_ENDPOINTS_USAGE per model service - call the public endpoint
--   08  MONITOR, OPERATE on each model service - observe status, SUSPEND / RESUME
-- Nothing else: no ownership, no CREATE privileges, no account-level privileges.

USE ROLE SECURITYADMIN;

CREATE ROLE IF NOT EXISTS SPCS_GATEWAY_ROLE
  COMMENT = 'spcs-gateway service user role: call model endpoints, suspend/resume them, write results';

-- Keep the custom role under SYSADMIN, as Snowflake recommends for every custom role.
GRANT ROLE SPCS_GATEWAY_ROLE TO ROLE SYSADMIN;

GRANT USAGE ON DATABASE PEDIATRIC_ML TO ROLE SPCS_GATEWAY_ROLE;
GRANT USAGE ON SCHEMA PEDIATRIC_ML.MODELS TO ROLE SPCS_GATEWAY_ROLE;
GRANT USAGE ON SCHEMA PEDIATRIC_ML.RESULTS TO ROLE SPCS_GATEWAY_ROLE;
GRANT USAGE ON SCHEMA PEDIATRIC_ML.CLINICAL_DATA TO ROLE SPCS_GATEWAY_ROLE;
GRANT USAGE ON WAREHOUSE GATEWAY_WH TO ROLE SPCS_GATEWAY_ROLE;
GRANT MONITOR, OPERATE ON COMPUTE POOL ML_INFERENCE_POOL TO ROLE SPCS_GATEWAY_ROLE;
