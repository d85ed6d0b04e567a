-- What kind of thing happened in an attempt (response, timeout, connect_error,
-- refused_by_policy, body_error, not_sent); NULL for attempts recorded before.
ALTER TABLE attempts ADD COLUMN kind TEXT;
