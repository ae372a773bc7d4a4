-- The successor a rotation stored for each retired refresh token: a retry
-- of a just-rotated token (the client lost the answer) is answered with it
-- within --refresh-reuse-grace instead of revoking the login.
ALTER TABLE refresh_tokens ADD COLUMN replaced_by text;
