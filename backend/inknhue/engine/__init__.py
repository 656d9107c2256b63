"""The engine: the stages of one page on one device (`pipeline.Engine`) and how it runs its
networks (`options.EngineOptions`)."""
