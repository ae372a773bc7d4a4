-- Memories belong to the user of the signal that made them; searches are
-- filtered by it. Existing memories take their signal's user; memories with
-- no user (their signal had none, or is gone) keep '' and are never returned.
ALTER TABLE memories ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
UPDATE memories SET user_id = coalesce((SELECT s.user_id FROM signals s WHERE s.id = memories.signal_id), '');
CREATE INDEX memories_user ON memories (user_id);
