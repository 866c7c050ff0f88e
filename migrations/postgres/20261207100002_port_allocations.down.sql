DROP TABLE port_allocations;
