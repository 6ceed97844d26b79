-- The complaint guard pauses a sending edition once; an operator who resumes it has decided,
-- and the guard does not pause it again (service/delivery/housekeeping.py).
ALTER TABLE editions ADD COLUMN guard_tripped_at timestamptz;

-- Editions sending at once take turns; an urgent one (a safeguarding alert) goes before the rest.
ALTER TABLE editions ADD COLUMN priority text NOT NULL DEFAULT 'normal' CHECK (priority IN ('normal', 'urgent'));
