"""Data for every stage: the on-disk formats (:mod:`deepeyes.data.formats`), SFT conversion
for LLaMA-Factory (:mod:`deepeyes.data.to_llamafactory`) and the synthetic sample data
generator (:mod:`deepeyes.data.synth`) that lets the whole pipeline run offline."""
