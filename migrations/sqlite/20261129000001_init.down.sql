DROP TABLE certificate_authority;
DROP TABLE deployments;
DROP INDEX api_keys_project;
DROP TABLE api_keys;
DROP TABLE projects;
