-- Each attempt of an archived step: where it ran (pool, model, tier, the capacity type
-- of its worker's node, the worker), when, what it spent and how it ended. A step's
-- attempts add up to the step's tokens and cost.
CREATE TABLE trimtab_attempts (
    namespace   text             NOT NULL,
    run_id      text             NOT NULL,
    step        text             NOT NULL,
    attempt     integer          NOT NULL,
    outcome     text             NOT NULL,
    pool        text,
    model       text,
    tier        text,
    capacity    text,
    worker      text,
    started_at  timestamptz,
    ended_at    timestamptz      NOT NULL,
    tokens      bigint           NOT NULL,
    cost        double precision NOT NULL,
    error       text,
    error_type  text,
    PRIMARY KEY (namespace, run_id, step, attempt),
    FOREIGN KEY (namespace, run_id, step) REFERENCES trimtab_steps ON DELETE CASCADE
);
-- `cost report --by capacity` by period.
CREATE INDEX trimtab_attempts_by_end ON trimtab_attempts (namespace, ended_at);
