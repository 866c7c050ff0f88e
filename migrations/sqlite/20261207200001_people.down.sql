ALTER TABLE api_keys DROP COLUMN role;
DROP TABLE console_sessions;
DROP TABLE memberships;
DROP TABLE users;
