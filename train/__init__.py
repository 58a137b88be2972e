"""edge_fer.train: datasets, the convolutional autoencoder and the classifier (needs the 'train' extra)."""
