-- 11 - optional: the source tables of the reference route (docs/REFERENCE_ROUTE.md), where
-- events name a note or an image by its key and the model runs inside Snowflake. Run it only
-- if you use that route. Idempotent. Role: SYSADMIN (owner), then SECURITYADMIN for the grants.
--
-- The gateway's role gets SELECT on these tables, and on no other table holding notes: its
-- MERGE reads the referenced rows and hands them to the service function inside the same
-- statement. Nothing the gateway runs brings a note or an image back to AWS (the statement
-- answers counts and ids only), but the grant itself allows reading them, so list in the
-- registry's allow-list (`references`) exactly the tables granted here. CLINICAL_NOTES (06,
-- Cortex Search's source) stays unreadable to the gateway. Calling the service function needs
-- the service role <svc>!ALL_ENDPOINTS_USAGE the gateway already holds (08); that this is all it
-- needs is unconfirmed.

USE ROLE SYSADMIN;

-- Notes as the EHR export lands them (Clarity/Caboodle extract, Snowpipe): one row per note
-- version; a reference may pin NOTE_VERSION.
CREATE TABLE IF NOT EXISTS PEDIATRIC_ML.CLINICAL_DATA.EHR_NOTES (
  NOTE_ID STRING NOT NULL, NOTE_VERSION NUMBER, NOTE_TEXT STRING, UPDATED_AT TIMESTAMP_TZ)
  COMMENT = 'Clinical notes (PHI) read by the gateway''s reference route';

-- Images the EHR pipeline stores (PNG/JPEG exports): one row per image id; UPDATED_AT lets a
-- reference pin the version it means.
CREATE TABLE IF NOT EXISTS PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGES (
  IMAGE_ID STRING NOT NULL, IMAGE BINARY, CONTENT_TYPE STRING, UPDATED_AT TIMESTAMP_TZ)
  COMMENT = 'Medical images (PHI) read by the gateway''s reference route';

USE ROLE SECURITYADMIN;

GRANT SELECT ON TABLE PEDIATRIC_ML.CLINICAL_DATA.EHR_NOTES TO ROLE SPCS_GATEWAY_ROLE;
GRANT SELECT ON TABLE PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGES TO ROLE SPCS_GATEWAY_ROLE;
