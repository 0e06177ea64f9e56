-- VMs, as far as budgets need them: usage is the sum over an account's VMs.
-- The VM layer extends this table.
CREATE TABLE vms (
  id         bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE RESTRICT,
  name       text NOT NULL UNIQUE,
  status     text NOT NULL,
  cpus       integer NOT NULL CHECK (cpus > 0),
  memory_mib bigint  NOT NULL CHECK (memory_mib > 0),
  disk_gib   bigint  NOT NULL CHECK (disk_gib > 0),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vms_account ON vms (account_id);
