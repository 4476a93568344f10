"""SQLite files in HOME: WAL, one writer, numbered migrations. Imports only stdlib and errors."""
