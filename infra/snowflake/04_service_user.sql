-- 04 - the gateway's TYPE = SERVICE user, authenticated by an RSA key pair.
-- Idempotent: CREATE ... IF NOT EXISTS, then ALTER ... SET so a re-run also updates the key.
-- Role: USERADMIN for the user, SECURITYADMIN for the role grant.
--
-- The public key arrives through client-side variable substitution; it is never written here.
--   Snowflake CLI:  snow sql -f 04_service_user.sql -D "gateway_public_key=$(cat pubkey.b64)"
--   SnowSQL:        snowsql -f 04_service_user.sql -o variable_substitution=true \
--                     -D gateway_public_key="$(cat pubkey.b64)"
-- where pubkey.b64 is the public key's base64 body without the BEGIN/END lines (docs/DEPLOY.md).
-- Key rotation without downtime: set RSA_PUBLIC_KEY_2 to the new key, switch the Secrets
-- Manager secret to the new private key, wait for warm containers to refresh the secret (the
-- registry's secret max_age_seconds, 300 s by default), then UNSET RSA_PUBLIC_KEY.
--
-- The user is created DISABLED: a credential that reads PHI must never work from anywhere.
-- 05_network_policy.sql pins it to the Lambda egress IPs (or VPC endpoint) and only then
-- enables it. A re-run of this script does not disable an existing user.

USE ROLE USERADMIN;

-- TYPE = SERVICE: no password, no MFA prompts, no interactive login.
CREATE USER IF NOT EXISTS GATEWAY_SVC
  TYPE = SERVICE
  DISABLED = TRUE
  DEFAULT_ROLE = SPCS_GATEWAY_ROLE
  DEFAULT_WAREHOUSE = GATEWAY_WH
  COMMENT = 'spcs-gateway (AWS Lambda) service user';

ALTER USER GATEWAY_SVC SET
  RSA_PUBLIC_KEY = '&{ gateway_public_key }'
  DEFAULT_ROLE = SPCS_GATEWAY_ROLE
  -- Logins use the gateway role only, never secondary roles granted later by mistake.
  DEFAULT_SECONDARY_ROLES = ();

USE ROLE SECURITYADMIN;

GRANT ROLE SPCS_GATEWAY_ROLE TO USER GATEWAY_SVC;
