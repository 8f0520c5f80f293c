"""Listening review: verdicts on (clip, tag) questions and the corrected annotations they give.

``store`` keeps the verdicts (one SQLite database per corpus under the data root);
``corrections`` turns them into corrected labels. Nothing is imported here so that the
dashboard can import the store without pulling in anything heavy.
"""
