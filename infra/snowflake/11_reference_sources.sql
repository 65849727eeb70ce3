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

-- Images as files on a stage (docs/REFERENCE_ROUTE.md, "Images on a stage"). A reference names
-- a file by its path relative to the stage. Plain SQL cannot read a staged file's bytes, so
-- READ_STAGED_FILE does: a Python UDF that opens a scoped URL (BUILD_SCOPED_FILE_URL, built
-- inside the MERGE with the caller's READ on the stage) with SnowflakeFile and answers BINARY.
-- The MERGE joins DIRECTORY(@stage) on the path, so the stage needs its directory table: a
-- file the directory table does not list is REFERENCE_NOT_FOUND and is never read. Internal
-- stages refresh it with AUTO_REFRESH = TRUE (or ALTER STAGE ... REFRESH after a PUT).
-- SNOWFLAKE_SSE: server-side encryption, which scoped file URLs to internal stages need.
CREATE STAGE IF NOT EXISTS PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGE_STAGE
  ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE')
  DIRECTORY = (ENABLE = TRUE AUTO_REFRESH = TRUE)
  COMMENT = 'Medical image files (PHI) read by the gateway''s reference route';

-- The reader: the registry's references.file_reader, by default READ_STAGED_FILE in the
-- stage's schema. SnowflakeFile.open accepts only scoped URLs by default, so the function reads
-- only files its caller could read. A file above BINARY's size limit fails the statement.
CREATE OR ALTER FUNCTION PEDIATRIC_ML.CLINICAL_DATA.READ_STAGED_FILE(FILE_URL STRING)
  RETURNS BINARY
  LANGUAGE PYTHON
  RUNTIME_VERSION = '3.11'
  PACKAGES = ('snowflake-snowpark-python')
  HANDLER = 'read_staged_file'
  COMMENT = 'Bytes of a staged file, by scoped URL (the gateway''s reference route)'
AS $$
from snowflake.snowpark.files import SnowflakeFile


def read_staged_file(file_url):
    with SnowflakeFile.open(file_url, "rb") as source:
        return source.read()
$$;

USE ROLE SECURITYADMIN;

GRANT SELECT ON TABLE PEDIATRIC_ML.CLINICAL_DATA.EHR_NOTES TO ROLE SPCS_GATEWAY_ROLE;
GRANT SELECT ON TABLE PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGES TO ROLE SPCS_GATEWAY_ROLE;
-- Stage files: READ on the (internal) stage for BUILD_SCOPED_FILE_URL and DIRECTORY(), USAGE
-- on the reader. An external stage needs USAGE instead of READ.
GRANT READ ON STAGE PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGE_STAGE TO ROLE SPCS_GATEWAY_ROLE;
GRANT USAGE ON FUNCTION PEDIATRIC_ML.CLINICAL_DATA.READ_STAGED_FILE(STRING)
  TO ROLE SPCS_GATEWAY_ROLE;
