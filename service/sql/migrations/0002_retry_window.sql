-- Relay outages of hours must lose nothing: a copy is retried for a window measured
-- from its first try (LETTERBOX_RETRY_FOR_HOURS), and an edition may say when its
-- content stops being timely (expires_at), after which unsent copies are skipped.
ALTER TABLE deliveries ADD COLUMN first_attempt_at timestamptz;
ALTER TABLE editions ADD COLUMN expires_at timestamptz;

-- How often the worker holding a copy stopped (was killed) before writing its result:
-- a copy that keeps taking its worker down fails instead of stopping every new worker.
ALTER TABLE deliveries ADD COLUMN lost_leases integer NOT NULL DEFAULT 0;
