-- When a run's tool with side effects starts, the job says so: a run taken
-- over after a crash past that point is not repeated but handed to a human.
ALTER TABLE jobs ADD COLUMN side_effects_at TIMESTAMPTZ;
