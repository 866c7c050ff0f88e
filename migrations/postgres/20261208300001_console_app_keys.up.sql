-- App keys a web-console sign-in session made for itself (the SHA-256 id of that
-- session): deleted with the session, at sign-out or when it expires. No foreign key:
-- the keys are deleted explicitly, so each deletion also bumps the deployment's revision
-- and reaches the broker.
ALTER TABLE deployment_app_keys ADD COLUMN console_session TEXT;
CREATE INDEX deployment_app_keys_by_console_session ON deployment_app_keys (console_session);
