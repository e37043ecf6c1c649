"""The applications, one module per task (helpers are named after it: text_model, forecast_eval, ...):

    rnnkit.tasks.text      train  load  generate  evaluate  score  TextConfig
    rnnkit.tasks.forecast  Forecaster.fit  Forecaster.predict  Forecaster.refit  Forecaster.save  Forecaster.load
                           fit  predict  refit  evaluate  backtest  format_table  ForecastConfig
    rnnkit.tasks.classify  SequenceClassifier.fit  SequenceClassifier.predict  SequenceClassifier.predict_proba
                           SequenceClassifier.score  SequenceClassifier.save  SequenceClassifier.load  fit
    rnnkit.tasks.memory    train  save  load  generate_words  exploding_demo  MemoryConfig

The contract they share. A task module owns its data pipeline (split first; scalers and statistics from the
training part only), its model, its training (through rnnkit.train.fit) and its save/load (safetensors +
JSON through rnnkit.io). It talks to the outside only through what it is given: lines of text go to a
``log`` callable (None: silence), a progress bar only through fit(progress=True), and a long run ends
cleanly after the step where a ``stop`` callable it polls returns True. It never prints, never plots or
writes pages (no matplotlib, rnnkit.plots, rnnkit.views), never installs signal handlers, never sets thread
limits (threadpoolctl) and never imports the command layer; task modules import one another without cycles.

The command layer (rnnkit.cli, rnnkit/commands/) parses arguments, sets the BLAS thread count, shows the
progress bar, turns Ctrl-C/SIGTERM into ``stop`` (rnnkit/commands/interrupt.py), draws the plots and writes
the run folder: config, metrics, plots, pages, and the model through the task's save. One exception, for
exact resume: a text run writes its periodic checkpoints, metrics.csv and config.json into the ``out``
folder it is handed, and calls ``on_metrics`` so that the command redraws its plot.
tests/tasks/test_contract.py checks the never-rules on the source.
"""
