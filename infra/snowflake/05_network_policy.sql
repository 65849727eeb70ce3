-- 05 - restrict GATEWAY_SVC to the Lambda functions' egress IPs, then enable it.
-- Required: 04 creates the user DISABLED, and this script is what enables it, so the gateway's
-- credential (which reads PHI: the results table, Cortex Search over the notes) never works from
-- an address outside the network policy. PAT authentication needs the policy anyway (a service
-- user can use a PAT only while a network policy applies to it).
-- Idempotent: CREATE ... IF NOT EXISTS, then ALTER ... SET so a re-run updates the IP list.
-- Role: ACCOUNTADMIN (network policies need the account-level CREATE NETWORK POLICY and
-- ATTACH POLICY privileges; delegate them to a security role if your account does).
--
-- Lambda has fixed egress IPs only inside a VPC with a NAT gateway: the template refuses a PHI
-- stack without VpcSubnetIds (DataClassification=phi), so those subnets and their NAT gateway
-- exist before the deploy. Pass the NAT gateways' Elastic IPs as a quoted CIDR list:
--   snow sql -f 05_network_policy.sql -D "lambda_egress_cidrs='203.0.113.10/32','203.0.113.11/32'"
-- Anything else that uses this credential (spcs-gateway doctor) must run from those addresses
-- too: a CloudShell VPC environment or an instance in the same private subnets.
--
-- PrivateLink instead of a NAT gateway (Business Critical edition; docs/SECURITY.md): the
-- functions reach the account and the SPCS endpoints over an interface VPC endpoint, and the
-- rule names that endpoint instead of IPs. Replace the rule below with:
--   CREATE NETWORK RULE IF NOT EXISTS PEDIATRIC_ML.NETWORK.GATEWAY_LAMBDA_EGRESS
--     MODE = INGRESS TYPE = AWSVPCEID VALUE_LIST = ('vpce-0123456789abcdef0')
--     COMMENT = 'VPC endpoint of the spcs-gateway Lambda functions';
-- (TYPE cannot be changed by ALTER: drop and re-create the rule to switch.)

USE ROLE ACCOUNTADMIN;

-- Network rules are schema objects; keep them apart from data and models.
CREATE SCHEMA IF NOT EXISTS PEDIATRIC_ML.NETWORK
  COMMENT = 'Network rules for spcs-gateway';

CREATE NETWORK RULE IF NOT EXISTS PEDIATRIC_ML.NETWORK.GATEWAY_LAMBDA_EGRESS
  MODE = INGRESS
  TYPE = IPV4
  VALUE_LIST = (&{ lambda_egress_cidrs })
  COMMENT = 'NAT gateway Elastic IPs of the spcs-gateway Lambda functions';

ALTER NETWORK RULE PEDIATRIC_ML.NETWORK.GATEWAY_LAMBDA_EGRESS SET
  VALUE_LIST = (&{ lambda_egress_cidrs });

CREATE NETWORK POLICY IF NOT EXISTS GATEWAY_SVC_POLICY
  ALLOWED_NETWORK_RULE_LIST = ('PEDIATRIC_ML.NETWORK.GATEWAY_LAMBDA_EGRESS')
  COMMENT = 'spcs-gateway service user: Lambda egress only';

ALTER USER GATEWAY_SVC SET NETWORK_POLICY = GATEWAY_SVC_POLICY;

-- Pinned: now the credential may work.
ALTER USER GATEWAY_SVC SET DISABLED = FALSE;

-- PAT mode only (SnowflakeAuthMode=pat). Not run by this script: a token is shown once and
-- must go straight into Secrets Manager as {"token": "<PAT>"}, never into a file or a log.
-- Rotation: PATs expire (DAYS_TO_EXPIRY); create the next one (a new name) a week before,
-- update the secret, wait for warm containers to refresh it (max_age_seconds), then remove the
-- old one with ALTER USER GATEWAY_SVC REMOVE PROGRAMMATIC ACCESS TOKEN <old name>.
--
-- ALTER USER GATEWAY_SVC ADD PROGRAMMATIC ACCESS TOKEN SPCS_GATEWAY_PAT_2025_01
--   ROLE_RESTRICTION = 'SPCS_GATEWAY_ROLE'
--   DAYS_TO_EXPIRY = 90
--   COMMENT = 'spcs-gateway Lambda';
