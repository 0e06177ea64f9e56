-- What the VM host needs to run, find and re-attach to a VM.
-- status:  creating | running | stopped | crashed
-- desired: running | stopped  (what the reconciler drives towards)
ALTER TABLE vms
  ADD COLUMN image          text    NOT NULL DEFAULT 'tiny',
  ADD COLUMN desired        text    NOT NULL DEFAULT 'running',
  ADD COLUMN ssh_port       integer UNIQUE,
  ADD COLUMN web_port       integer UNIQUE,
  ADD COLUMN guest_web_port integer NOT NULL DEFAULT 80,
  ADD COLUMN pid            integer,
  ADD COLUMN host_key       text,
  ADD COLUMN env            jsonb   NOT NULL DEFAULT '{}',
  ADD COLUMN tags           text[]  NOT NULL DEFAULT '{}',
  ADD COLUMN setup_script   text,
  ADD COLUMN restarts       integer NOT NULL DEFAULT 0,
  ADD COLUMN updated_at     timestamptz NOT NULL DEFAULT now(),
  ADD CONSTRAINT vms_status CHECK (status IN ('creating', 'running', 'stopped', 'crashed')),
  ADD CONSTRAINT vms_desired CHECK (desired IN ('running', 'stopped'));
