"""Pure scorers shared by the harness and the training rewards: answer extraction and metrics of GSM8K, MATH500,
POPE, MME and captions, yes/no parsing, CLIP score and ImageReward. Nothing here knows about task cards or runs."""
