-- 01 - database, schemas and the warehouse the gateway's MERGE runs on.
-- Idempotent: safe to run again. Run first. Role: SYSADMIN (owns the objects below).

USE ROLE SYSADMIN;

CREATE DATABASE IF NOT EXISTS PEDIATRIC_ML
  COMMENT = 'Pediatric ML: models, inference results, clinical data (PHI)';

CREATE SCHEMA IF NOT EXISTS PEDIATRIC_ML.MODELS
  COMMENT = 'Model Registry models and their SPCS inference services';
CREATE SCHEMA IF NOT EXISTS PEDIATRIC_ML.RESULTS
  COMMENT = 'Inference results written by spcs-gateway (one row per event)';
CREATE SCHEMA IF NOT EXISTS PEDIATRIC_ML.CLINICAL_DATA
  COMMENT = 'Clinical notes (PHI) and the Cortex Search service over them';

-- XSMALL and quick to suspend: the gateway runs one small MERGE per batch.
CREATE WAREHOUSE IF NOT EXISTS GATEWAY_WH
  WAREHOUSE_SIZE = XSMALL
  AUTO_SUSPEND = 60
  AUTO_RESUME = TRUE
  INITIALLY_SUSPENDED = TRUE
  COMMENT = 'spcs-gateway results MERGE and Cortex Search refresh';
