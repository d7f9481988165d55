-- 013_outbox_event.sql (ours): a hub notice to an agent another node serves
-- (spread placement) is also a channel event that says what it is about (an
-- assignment, a round approved, a review...). The sender's node writes that
-- event here with the outbox row; the recipient's node pushes it when it takes
-- the delivery, so the agent's stream shows the same event wherever the task is
-- served. NULL: an agent's message (its event is a plain "message").
ALTER TABLE delivery_outbox ADD COLUMN event_json text;
