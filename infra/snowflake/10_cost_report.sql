-- 10 - what the model services cost, and what that bought. Read-only; run any time.
-- Role: a role that can read SNOWFLAKE.ACCOUNT_USAGE (ACCOUNTADMIN, or one granted the
-- SNOWFLAKE database role USAGE_VIEWER) and SELECT on the results table.
--
-- Source: SNOWFLAKE.ACCOUNT_USAGE.SNOWPARK_CONTAINER_SERVICES_HISTORY (documented; hourly credits
-- per compute pool, up to 3 hours behind). A commonly quoted query,
--   SELECT * FROM TABLE(INFORMATION_SCHEMA.COMPUTE_POOL_USAGE_HISTORY(
--     COMPUTE_POOL_NAME => 'ML_INFERENCE_POOL', START_TIME => DATEADD(DAY, -7, CURRENT_TIMESTAMP())));
-- names a table function found in no Snowflake reference page; try it if you prefer fresher data,
-- but rely on the view below.

USE ROLE ACCOUNTADMIN;

-- Credits per day (UTC) for the gateway's pool over the last 30 days, next to the results the
-- gateway wrote that day and the credits per 1,000 results. Days without credits are days the
-- control plane kept the services (and then the pool) suspended.
WITH CREDITS AS (
  SELECT TO_DATE(CONVERT_TIMEZONE('UTC', START_TIME)) AS DAY,
         SUM(CREDITS_USED) AS CREDITS_USED,
         COUNT_IF(CREDITS_USED > 0) AS BILLED_HOURS
  FROM SNOWFLAKE.ACCOUNT_USAGE.SNOWPARK_CONTAINER_SERVICES_HISTORY
  WHERE COMPUTE_POOL_NAME = 'ML_INFERENCE_POOL'
    AND START_TIME >= DATEADD(DAY, -30, CURRENT_TIMESTAMP())
  GROUP BY 1
),
RESULTS AS (
  SELECT TO_DATE(CONVERT_TIMEZONE('UTC', PROCESSED_AT)) AS DAY,
         COUNT_IF(KIND = 'clinical-note') AS NOTES,
         COUNT_IF(KIND = 'medical-image') AS IMAGES,
         COUNT(*) AS TOTAL
  FROM PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS
  WHERE PROCESSED_AT >= DATEADD(DAY, -30, CURRENT_TIMESTAMP())
  GROUP BY 1
)
SELECT
  COALESCE(C.DAY, R.DAY) AS DAY,
  COALESCE(C.CREDITS_USED, 0) AS CREDITS_USED,
  COALESCE(C.BILLED_HOURS, 0) AS BILLED_HOURS,
  COALESCE(R.NOTES, 0) AS NOTES,
  COALESCE(R.IMAGES, 0) AS IMAGES,
  ROUND(1000 * COALESCE(C.CREDITS_USED, 0) / NULLIF(R.TOTAL, 0), 4) AS CREDITS_PER_1000_RESULTS
FROM CREDITS C
FULL OUTER JOIN RESULTS R ON R.DAY = C.DAY
ORDER BY DAY DESC;
