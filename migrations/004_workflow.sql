-- 004_workflow.sql: tasks, rounds, assignments, handoffs and operator decisions.
-- Table and column names follow agent-hub-mcp 0.2.1 (root_tasks, rounds, assignments,
-- handoffs, operator_approvals); columns the reference lacks are marked "ours".

CREATE TABLE IF NOT EXISTS root_tasks (
    id                  TEXT PRIMARY KEY,          -- chosen by the dispatcher
    title               TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL,             -- draft|awaiting_operator_approval|dispatched|completed|closed
    dispatcher_agent_id TEXT NOT NULL,             -- the creator; only it plans and reviews
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS rounds (
    id             TEXT PRIMARY KEY,
    root_task_id   TEXT NOT NULL REFERENCES root_tasks(id),
    round_number   INTEGER NOT NULL,
    status         TEXT NOT NULL,                  -- awaiting_operator_approval|dispatched|in_progress|awaiting_review|completed|changes_requested|cancelled
    plan_json      TEXT NOT NULL DEFAULT '{}',
    operator_note  TEXT,
    rejected       INTEGER NOT NULL DEFAULT 0,     -- ours: rejected, waiting for a revised plan
    review_verdict TEXT,
    review_note    TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (root_task_id, round_number)
);

CREATE TABLE IF NOT EXISTS assignments (
    id               TEXT PRIMARY KEY,
    round_id         TEXT NOT NULL REFERENCES rounds(id),
    root_task_id     TEXT NOT NULL,                -- ours: saves a join
    agent_id         TEXT NOT NULL,
    goal             TEXT NOT NULL,
    status           TEXT NOT NULL,                -- pending|claimed|in_progress|completed|cancelled
    progress_note    TEXT,
    claimed_at       TEXT,
    lease_expires_at TEXT,
    handoff_id       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_assignments_round ON assignments(round_id);
CREATE INDEX IF NOT EXISTS idx_assignments_agent ON assignments(agent_id, status);

CREATE TABLE IF NOT EXISTS handoffs (
    id            TEXT PRIMARY KEY,
    assignment_id TEXT NOT NULL REFERENCES assignments(id),
    round_id      TEXT NOT NULL,
    root_task_id  TEXT NOT NULL,
    from_agent    TEXT NOT NULL,
    branch        TEXT NOT NULL DEFAULT '',
    commit_hash   TEXT NOT NULL DEFAULT '',
    changed_files TEXT NOT NULL DEFAULT '[]',      -- JSON arrays of strings
    tests_run     TEXT NOT NULL DEFAULT '[]',
    risks         TEXT NOT NULL DEFAULT '[]',
    next_steps    TEXT NOT NULL DEFAULT '[]',
    notes         TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS operator_approvals (
    id         TEXT PRIMARY KEY,
    round_id   TEXT NOT NULL,
    action     TEXT NOT NULL,                      -- approve|reject
    note       TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
