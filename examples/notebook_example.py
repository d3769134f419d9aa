"""Features in, named clusters out: the README's "Python API" snippet as a script.

    python examples/notebook_example.py photos.features.safetensors photos.knowledge.json 10

The feature file comes from ``kec embed images``, the knowledge file from
``kec knowledge build``; the knowledge is embedded with the text tower of the encoder
recorded in the feature file.
"""

from __future__ import annotations

import sys

import kec


def main(features: str, knowledge: str, n_clusters: int) -> list[str | None]:
    X = kec.load_features(features)
    model = kec.KEC(n_clusters=n_clusters, random_state=0).fit(X, knowledge=knowledge)
    print(model.cluster_names_)
    if X.labels is not None:
        print(kec.evaluate(X.labels, model.labels_))
    print(model.predict(X))  # new images: any (M, d) features of the same encoder
    for c in model.clusters_:
        print(c["cluster"], c["size"], c["name"], [a["text"] for a in c["attributes"]])
    return model.cluster_names_


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} FEATURES.safetensors KNOWLEDGE.json N_CLUSTERS")
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
