-- Application ids are unique per tenant (each user tenant has its own `demo-app`; the admin
-- tenant its `admin-console`), as every other row is keyed by (tenant_id, id).
ALTER TABLE applications DROP CONSTRAINT applications_pkey;
ALTER TABLE applications ADD PRIMARY KEY (tenant_id, id);
