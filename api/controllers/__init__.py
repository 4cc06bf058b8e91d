"""HTTP controllers: thin, each calls the engine or the store and returns a schema."""
