-- 06 - the results table the gateway writes, and the clinical notes Cortex Search reads.
-- Idempotent. Role: SYSADMIN (owner), then SECURITYADMIN for the gateway's grant.
-- Both definitions are the contract in docs/ARCHITECTURE.md; change them there first.

USE ROLE SYSADMIN;

-- One row per event; EVENT_ID is the idempotency key of the gateway's MERGE. OUTPUT holds
-- model output (PHI-derived): access to this table is access to PHI.
CREATE TABLE IF NOT EXISTS PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS (
  EVENT_ID STRING NOT NULL PRIMARY KEY, KIND STRING NOT NULL, SUBJECT_ID STRING NOT NULL,
  SERVICE STRING NOT NULL, MODEL_VERSION STRING, STATUS STRING NOT NULL, OUTPUT VARIANT,
  LATENCY_MS NUMBER, PROCESSED_AT TIMESTAMP_TZ NOT NULL);

-- Loaded by your EHR pipeline (Clarity/Caboodle export). Change tracking is what Cortex Search
-- uses to refresh incrementally (07).
CREATE TABLE IF NOT EXISTS PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES (
  NOTE_ID STRING, PATIENT_ID STRING, NOTE_TYPE STRING, DEPARTMENT STRING, NOTE_DATE DATE,
  NOTE_TEXT STRING)
  CHANGE_TRACKING = TRUE
  COMMENT = 'Clinical notes (PHI) indexed by CLINICAL_NOTES_SEARCH';

USE ROLE SECURITYADMIN;

-- The MERGE only inserts (WHEN NOT MATCHED THEN INSERT) and the duplicate check selects:
-- no UPDATE, no DELETE, no TRUNCATE.
GRANT SELECT, INSERT ON TABLE PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS TO ROLE SPCS_GATEWAY_ROLE;
