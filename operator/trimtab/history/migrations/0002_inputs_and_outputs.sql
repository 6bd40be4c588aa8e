-- A run's inputs and its steps' outputs, for workflows whose spec.history keeps them,
-- until io_expires_at (spec.history.retentionDays after the run ended).
ALTER TABLE trimtab_runs
    ADD COLUMN inputs        jsonb,
    ADD COLUMN outputs       jsonb,
    ADD COLUMN io_expires_at timestamptz;
CREATE INDEX trimtab_runs_io_expiry ON trimtab_runs (io_expires_at)
    WHERE io_expires_at IS NOT NULL;
