DROP INDEX deployment_events_by_time;
DROP INDEX deployment_events_by_deployment;
DROP TABLE deployment_events;
