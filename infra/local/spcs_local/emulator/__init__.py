"""Local Snowflake + SPCS emulator (see docs/ARCHITECTURE.md, section "Emulator")."""
