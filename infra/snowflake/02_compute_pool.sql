-- 02 - the compute pool the model services run on.
-- Idempotent. Role: ACCOUNTADMIN (CREATE COMPUTE POOL is an account privilege it holds by default).
--
-- AUTO_RESUME: starting or resuming a service on the pool resumes the pool.
-- AUTO_SUSPEND_SECS: the pool suspends itself once no service has run on it for this long. The
-- gateway's control plane suspends idle *services* (it knows the SQS backlog; Snowflake does not),
-- after which this setting stops the pool's billing too.
-- CPU_X64_M fits BioBERT NER and BiomedCLIP at modest volume; use a GPU family (e.g. GPU_NV_S)
-- for high volume. The family cannot be changed later: a different family is a new pool.

USE ROLE ACCOUNTADMIN;

CREATE COMPUTE POOL IF NOT EXISTS ML_INFERENCE_POOL
  MIN_NODES = 1
  MAX_NODES = 2
  INSTANCE_FAMILY = CPU_X64_M
  AUTO_RESUME = TRUE
  AUTO_SUSPEND_SECS = 600
  INITIALLY_SUSPENDED = TRUE
  COMMENT = 'SPCS model serving for spcs-gateway (BioBERT NER, BiomedCLIP)';

-- Who may run services on the pool is granted in 03: the deployer role (USAGE, MONITOR) that
-- owns the model services, and the gateway's role (MONITOR, OPERATE).
