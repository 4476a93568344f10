"""The ``assistant`` command: one module per command group; commands parse and print.

May import every package; heavy libraries only inside commands so --help stays instant."""
