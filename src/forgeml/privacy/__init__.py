"""Privacy: differentially private training (dp, Opacus) and federated learning (federated, Flower)."""
