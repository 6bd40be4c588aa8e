-- Every ended run, once (its latest ending: a resumed run that ends again is updated).
CREATE TABLE trimtab_runs (
    namespace        text             NOT NULL,
    run_id           text             NOT NULL,
    workflow         text             NOT NULL,
    generation       integer          NOT NULL,
    status           text             NOT NULL,
    priority         text             NOT NULL,
    created_at       timestamptz      NOT NULL,
    ended_at         timestamptz      NOT NULL,
    duration_seconds double precision NOT NULL,
    tokens           bigint           NOT NULL,
    cost             double precision NOT NULL,
    error            text,
    session          text,
    idempotency_key  text,
    trace_id         text             NOT NULL,
    archived_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, run_id)
);
-- `runs list` by workflow, newest first; `cost report` by period.
CREATE INDEX trimtab_runs_by_workflow ON trimtab_runs (namespace, workflow, created_at DESC);
CREATE INDEX trimtab_runs_by_end ON trimtab_runs (ended_at);

-- Each step of an archived run, as it ended: its last attempt and what all its attempts
-- spent.
CREATE TABLE trimtab_steps (
    namespace   text             NOT NULL,
    run_id      text             NOT NULL,
    step        text             NOT NULL,
    state       text             NOT NULL,
    attempts    integer          NOT NULL,
    pool        text,
    model       text,
    tier        text,
    queued_at   timestamptz,
    started_at  timestamptz,
    ended_at    timestamptz,
    tokens      bigint           NOT NULL,
    cost        double precision NOT NULL,
    error       text,
    error_type  text,
    PRIMARY KEY (namespace, run_id, step),
    FOREIGN KEY (namespace, run_id) REFERENCES trimtab_runs ON DELETE CASCADE
);
-- `cost report` by pool or model and day.
CREATE INDEX trimtab_steps_by_pool ON trimtab_steps (namespace, pool, ended_at);
