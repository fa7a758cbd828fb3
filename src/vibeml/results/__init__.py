"""Using and sharing a finished fine-tune: talk to it (``inference``), merge it (``export``), push it to the
Hugging Face hub with a model card (``hub``, ``card``). The service (``VibeML.generate`` / ``push`` /
``export``) calls in here; torch, transformers and peft are imported inside the functions that need them."""
