-- 07 - Cortex Search over the clinical notes (the API's semantic search).
-- Idempotent. Role: SYSADMIN (owns the table and the service).
-- Queried over REST by the gateway (docs/SNOWFLAKE_FACTS.md, "Cortex Search"), which needs
-- USAGE on the service only: the service reads CLINICAL_NOTES with its owner's rights.

USE ROLE SYSADMIN;

CREATE CORTEX SEARCH SERVICE IF NOT EXISTS PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES_SEARCH
  ON NOTE_TEXT
  ATTRIBUTES NOTE_TYPE, DEPARTMENT, PATIENT_ID
  WAREHOUSE = GATEWAY_WH
  TARGET_LAG = '1 hour'
  COMMENT = 'Semantic search over clinical notes (PHI) for spcs-gateway'
  AS (
    SELECT NOTE_ID, PATIENT_ID, NOTE_TYPE, DEPARTMENT, NOTE_DATE, NOTE_TEXT
    FROM PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES
  );

GRANT USAGE ON CORTEX SEARCH SERVICE PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES_SEARCH
  TO ROLE SPCS_GATEWAY_ROLE;
