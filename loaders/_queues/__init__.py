"""Queue backends: Postgres (`queue_messages` in the catalog) and Azure Storage Queue."""
