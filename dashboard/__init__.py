"""The Streamlit dashboard over run directories (``streamlit run dashboard/app.py -- --runs data/runs``)."""
