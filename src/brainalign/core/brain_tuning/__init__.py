"""Brain-tuning: fine-tune a text or speech backbone to predict fMRI responses.

The method (docs/methods.md, "Brain-tuning"; after the brain-tuning study of speech models on the
LeBel et al. story-listening data and its multi-participant follow-up):

* the backbone reads each volume's stimulus (:mod:`.stimulus`: the volume's words with their
  preceding context, or the audio window ending with the volume), pools one layer's hidden states
  into a vector per volume, and FIR delays plus one linear head per participant map those
  vectors to the participant's selected targets (:mod:`.model`);
* the loss is the MSE of responses standardised with training statistics; heads start at the
  closed-form ridge of the untuned backbone, AdamW with separate learning rates for backbone and
  heads, warm-up then linear decay, early stopping on validation samples (:mod:`.train`);
* one backbone is tuned per outer fold of the encoding on that fold's training samples only, so
  the encoding that scores it obeys the fold rule (:mod:`.run`); ``brain-permuted`` is the same
  training on responses whose TR blocks are shuffled within each story (:mod:`.data`).

Submodules import torch lazily; this package imports none of them.
"""
