DROP TABLE deployment_load;
DROP TABLE alert_states;
DROP TABLE alert_rules;
DROP TABLE alert_channels;
