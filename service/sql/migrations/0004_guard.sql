-- The complaint guard pauses a sending edition once; an operator who resumes it has decided,
-- and the guard does not pause it again (service/delivery/housekeeping.py).
ALTER TABLE editions ADD COLUMN guard_tripped_at timestamptz;
