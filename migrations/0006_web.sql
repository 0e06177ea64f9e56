-- The HTTPS front: who may see a VM's URL, and browser logins.
-- vms.public: anyone may open the VM's URL (share set-public).
ALTER TABLE vms ADD COLUMN public boolean NOT NULL DEFAULT false;

-- A login started in a browser, approved by `login CODE` in the lobby. The
-- browser proves it is the one that started it with a secret kept in a
-- cookie (only its hash is stored).
CREATE TABLE web_logins (
  code        text PRIMARY KEY,
  secret_hash text NOT NULL,
  source_addr text NOT NULL,
  user_agent  text NOT NULL DEFAULT '',
  account_id  bigint REFERENCES accounts(id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);

-- Browser sessions. One at the apex per login; one per VM host the browser
-- was let into, each a child of the apex session (logging out ends all).
-- Only hashes of the cookie values are stored.
CREATE TABLE web_sessions (
  id          bigserial PRIMARY KEY,
  token_hash  text NOT NULL UNIQUE,
  account_id  bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  host        text NOT NULL,
  parent_id   bigint REFERENCES web_sessions(id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX web_sessions_parent ON web_sessions (parent_id);

-- One-time tokens the apex session mints for one VM host, exchanged there
-- for that host's own cookie.
CREATE TABLE web_host_tokens (
  token_hash  text PRIMARY KEY,
  session_id  bigint NOT NULL REFERENCES web_sessions(id) ON DELETE CASCADE,
  host        text NOT NULL,
  expires_at  timestamptz NOT NULL
);
