-- Verification codes are kept as digests only (verification_codes/domain.py); the codes
-- stored in clear so far are at most ten minutes' worth and simply go. Codes of the
-- management API (`/api/verification-codes`, type Generic) belong to no interaction.
DELETE FROM verification_codes;
ALTER TABLE verification_codes DROP COLUMN code;
ALTER TABLE verification_codes ADD COLUMN code_digest text NOT NULL;
ALTER TABLE verification_codes ALTER COLUMN interaction_uid DROP NOT NULL;
CREATE INDEX verification_codes_recipient ON verification_codes (tenant_id, type, email, phone, created_at DESC)
    WHERE interaction_uid IS NULL;
