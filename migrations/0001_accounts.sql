-- Accounts, their SSH keys and budgets, invites, and the audit log.
CREATE TABLE accounts (
  id         bigserial PRIMARY KEY,
  name       text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The account's budget is the limit of its cgroup, shared by all its VMs.
CREATE TABLE budgets (
  account_id bigint PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
  cpus       integer NOT NULL CHECK (cpus > 0),
  memory_mib bigint  NOT NULL CHECK (memory_mib > 0),
  disk_gib   bigint  NOT NULL CHECK (disk_gib > 0),
  max_vms    integer NOT NULL CHECK (max_vms >= 0)
);

CREATE TABLE ssh_keys (
  id           bigserial PRIMARY KEY,
  account_id   bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  fingerprint  text NOT NULL UNIQUE,          -- "SHA256:..." as ssh-keygen -l prints it
  public_key   text NOT NULL,                 -- "TYPE BASE64"
  comment      text NOT NULL,
  added_at     timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  -- keys are removed and renamed by comment too, so a comment names one key
  UNIQUE (account_id, comment)
);
CREATE INDEX ssh_keys_account ON ssh_keys (account_id);

CREATE TABLE invites (
  code       text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  used_by    bigint REFERENCES accounts(id) ON DELETE SET NULL,
  used_at    timestamptz
);

-- Who did what. Rows outlive their account (account_id goes NULL, actor stays).
CREATE TABLE audit_log (
  id          bigserial PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  account_id  bigint REFERENCES accounts(id) ON DELETE SET NULL,
  actor       text NOT NULL,
  action      text NOT NULL,
  detail      jsonb NOT NULL DEFAULT '{}',
  source_addr text
);
-- registrations per source address per hour are counted from here
CREATE INDEX audit_log_source_action_at ON audit_log (source_addr, action, at);

-- The lobby's Up/Down history, kept per account across sessions.
CREATE TABLE lobby_history (
  id         bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  line       text NOT NULL,
  at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lobby_history_account ON lobby_history (account_id, id);
