//! Attachments: uploads checked by their bytes, stored without metadata, served to participants
//! only, sent with messages.
