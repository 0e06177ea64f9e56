-- Who else may use a VM. `ssh`: may enter it through the SSH gateway
-- (`share access allow VM ACCOUNT`). `web`: may open its private URL
-- (the HTTPS front's `share add`). A row with both false is deleted.
CREATE TABLE vm_shares (
  vm_id      bigint  NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
  account_id bigint  NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  ssh        boolean NOT NULL DEFAULT false,
  web        boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (vm_id, account_id)
);
CREATE INDEX vm_shares_account ON vm_shares (account_id);
