-- Bearer tokens of the HTTPS /exec API (`ssh-key generate-api-key`).
-- Only SHA-256 of a token is kept (lowercase hex): the token itself is shown
-- once, when it is made, and cannot be recovered from here.
CREATE TABLE api_tokens (
  id           bigserial PRIMARY KEY,
  account_id   bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  label        text NOT NULL,
  token_hash   text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  cmds         text[] NOT NULL DEFAULT '{}',   -- command names it may run; empty: all
  expires_at   timestamptz,                    -- NULL: never
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at   timestamptz
);
-- Tokens are revoked by label too, so a label names one live token; a
-- revoked token's label may be used again.
CREATE UNIQUE INDEX api_tokens_account_label ON api_tokens (account_id, label) WHERE revoked_at IS NULL;
